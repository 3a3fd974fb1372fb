"""Fakes for what cannot exist on the machines the tests run on (an NVIDIA GPU), behind the real interfaces."""
