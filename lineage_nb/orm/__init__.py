"""The active-record layer over SQLAlchemy 2; it knows nothing of runs or Jupyter."""
