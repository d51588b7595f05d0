"""Transform steps channels declare: field operations, code tables and Python functions."""
