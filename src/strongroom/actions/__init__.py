"""One module per verb: run(...) -> result. Actions compose the source, repository and storage layers."""
