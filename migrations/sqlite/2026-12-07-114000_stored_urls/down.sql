-- Nothing to undo: the values dropped were never valid to show.
SELECT 1;
