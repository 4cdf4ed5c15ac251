"""The operator dashboard: HTML pages at ``/ui`` for the people who run the integration.

Served by the host itself (an aiohttp sub-application, server-rendered Jinja2 templates, one
small script and one stylesheet shipped in this package), with its own sign-in: see
docs/operator-guide.md. Its routes are outside the Integrator API's route table and OpenAPI
document: they are pages for people, not an API.
"""
