"""Exchange market data over MCP: the client of an exchange's MCP server (CoinEx's tool names and envelopes)
and our replay server that answers the same tools from recorded data."""
