"""S3-to-API client library (see the client issue); empty until then."""
