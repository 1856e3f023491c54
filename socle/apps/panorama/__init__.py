"""Panorama IA: the catalogue of AI solutions by functional family, search by need, the census of the
administrations' needs and the calls for AI projects."""
from socle.apps.panorama.app import PanoramaApp

APP = PanoramaApp()
