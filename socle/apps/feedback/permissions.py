"""The feedback app's one permission, as roles hold it and its services check it."""

USE = "feedback:use"  # import citizens' feedback, analyse it, read its reports
