"""Citizens' feedback (Services Publics+ "je donne mon avis"): import, characterise, report."""
from socle.apps.feedback.app import FeedbackApp

APP = FeedbackApp()
