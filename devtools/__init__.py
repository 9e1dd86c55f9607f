"""Development tools shared by `make run` and the tests; never imported by the service."""
