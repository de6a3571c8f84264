"""Everything that speaks Rivya's protocol: contract, signatures, API client, simulator."""
