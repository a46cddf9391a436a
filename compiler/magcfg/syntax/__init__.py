"""What a layer file says: strict YAML reading (one meaning per text), and the line of a
key in YAML and CUE files. Used by the pipeline, the project file, lint and review."""
