"""Okapi data: schemas, raw ingest, rankings, download, build and load."""
