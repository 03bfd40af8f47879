"""Loopback simulator of the OpenAI and Azure OpenAI REST APIs."""
