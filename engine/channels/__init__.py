"""Channel configuration: typed models, the YAML loader with line numbers, the JSON schema."""
