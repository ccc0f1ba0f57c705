<?php
// Sum the quantity * price column of some CSV. Stops with exit status 3 on
// the first malformed row.
$csv = <<<CSV
item,quantity,price
apple,3,0.50
"bread, wholemeal",1,2.25
milk,2,0.99
eggs,twelve,0.20
cheese,1,4.10
CSV;

$lines = explode("\n", $csv);
$header = str_getcsv(array_shift($lines));
$total = 0.0;
foreach ($lines as $n => $line) {
    $row = array_combine($header, str_getcsv($line));
    if (!is_numeric($row['quantity']) || !is_numeric($row['price'])) {
        printf("row %d (%s): bad number\n", $n + 2, $row['item']);
        printf("total so far: %.2f\n", $total);
        exit(3);
    }
    $cost = $row['quantity'] * $row['price'];
    printf("%-18s %2d x %5.2f = %6.2f\n", $row['item'], $row['quantity'], $row['price'], $cost);
    $total += $cost;
}
printf("total: %.2f\n", $total);
