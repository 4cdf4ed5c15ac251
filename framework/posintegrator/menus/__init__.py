"""The menu stream, POS -> cloud: fetch, transform, validate, hash and publish each location's
menu, and keep the published one at hand for order checks."""
