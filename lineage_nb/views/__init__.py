"""What people look at: DataFrames, HTML reprs and lineage pictures."""
