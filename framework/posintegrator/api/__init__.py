"""The Integrator API (aiohttp): the cloud's way in, and the POS webhook intake."""
