"""The HTTP side: the JSON API, the admin pages, login, languages, the OpenAPI document and the live stream."""
