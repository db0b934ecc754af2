"""The tracking procedure: box maths, SiamFC crops, from the head's maps to boxes, the multi-object tracker and
the static baseline."""
