"""Citizens' feedback (Services Publics+ "je donne mon avis"): import, characterise, report."""
