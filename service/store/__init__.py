"""The service's database: documents, jobs, their nodes, and the content-addressed generation cache."""
