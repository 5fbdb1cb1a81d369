// Placeholder: the wire module (framing, fd passing, envelope) lands here.
