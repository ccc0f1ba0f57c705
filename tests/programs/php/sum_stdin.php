<?php
// Read integers from standard input until EOF.
$count = 0;
$sum = 0;
while (($line = fgets(STDIN)) !== false) {
    foreach (preg_split('/\s+/', trim($line), -1, PREG_SPLIT_NO_EMPTY) as $n) {
        $sum += (int) $n;
        $count++;
    }
}
echo "count: $count\n";
echo "sum: $sum\n";
