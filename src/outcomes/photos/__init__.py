"""Photos as a first-class input (issue 13): simulate, correct colour, measure, check, show."""
