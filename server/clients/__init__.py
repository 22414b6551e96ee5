"""Ways to use a mentee from code: the HTTP client, the LangChain chat model over the API, and the in-process
chat model."""
