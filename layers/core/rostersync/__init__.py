"""rostersync: keeps a product's district directory in step with the district's rostering provider."""
