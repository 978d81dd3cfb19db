"""The product's directory and the sync's own state in DynamoDB. The only place that knows table keys."""
