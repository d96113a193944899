#!/usr/bin/env python3
"""Puts a section (standard input, its own <!-- NAME:begin --> ... <!-- NAME:end --> markers included) into
BENCHMARKS.md: in place of the old one, else before the section named by --before, else at the end.

    ... | python3 bench/put_section.py NAME [--before OTHER]
"""
import argparse
import re
import sys
from pathlib import Path

ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
ap.add_argument('name')
ap.add_argument('--before', default='')
opt = ap.parse_args()
section = sys.stdin.read().strip('\n')
path = Path(__file__).resolve().parents[1] / 'BENCHMARKS.md'
text = path.read_text()
begin, end = f'<!-- {opt.name}:begin -->', f'<!-- {opt.name}:end -->'
other = f'<!-- {opt.before}:begin -->'
if begin in text:
    text = re.sub(re.escape(begin) + '.*?' + re.escape(end), lambda _: section, text, flags=re.S)
elif opt.before and other in text:
    text = text.replace(other, section + '\n\n' + other, 1)
else:
    text = text.rstrip('\n') + '\n\n' + section + '\n'
path.write_text(text)
print('BENCHMARKS.md updated')
