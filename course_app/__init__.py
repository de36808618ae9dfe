"""Course Studio: build video courses in the browser."""
