"""Photos as a first-class input (issue 13): loading, measuring, quality, panels.

Imported only by the photos command, the panels and tests: its modules pull in heavy image
libraries, which `import outcomes` must not load.
"""
