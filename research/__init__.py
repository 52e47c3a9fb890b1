"""One-off studies: each script asks one question, writes its answer into research/results/,
and names the command that wrote it inside the file (research/README.md lists them)."""
