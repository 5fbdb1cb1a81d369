// Placeholder: the sandbox module lands here.
