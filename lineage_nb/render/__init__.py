"""Pure renderers at the bottom of the package: frames (and later HTML and SVG) from plain values;
they import nothing of the database, ORM or lineage layers."""
