"""The embedded local stack (moto + the real ASL + in-process Lambdas), the provider simulator and the CLI."""
