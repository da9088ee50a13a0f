"""Destinations: where the bytes of a download go, and how they become durable and published."""
