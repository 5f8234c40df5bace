"""Frozen CRL teachers: networks, checkpoints, import from scaling-crl, and the CRL trainer."""

from distill.teachers.teacher import Teacher, load_teacher

__all__ = ["Teacher", "load_teacher"]
