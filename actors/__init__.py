"""Dramatiq glue: the broker, one thin actor per stage. The only package that imports dramatiq."""
