"""Photos as a first-class input (issue 13): measured, quality-checked and shown before/after.

Heavy imports (OpenCV, colour-science, scikit-image, dask) live inside the submodules, so
``import outcomes`` stays light; import a submodule where it is needed.
"""
