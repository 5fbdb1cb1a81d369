// Placeholder: the JSON Schema module lands here.
