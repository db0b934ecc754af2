"""Masks for segmentation stacks: full-frame masks and their rectangles, the rules that keep objects' masks
disjoint, masks filled from boxes, and SAM."""
