"""Channel runtime: intake, routing rules, the pipeline and its worker."""
