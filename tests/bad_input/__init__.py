"""Bad, hostile and unusual input, one module per class of problem (issue 12)."""
