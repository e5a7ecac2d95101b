"""Front ends that put memscope's numbers into other systems (``prometheus``); none load here."""
