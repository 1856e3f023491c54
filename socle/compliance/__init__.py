"""Duties towards the people whose data the platform holds: erasure, access and portability, retention."""
