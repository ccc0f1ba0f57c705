<?php
function matrix_multiply(array $a, array $b): array
{
    $rows = count($a);
    $cols = count($b[0]);
    $inner = count($b);
    $c = [];
    for ($i = 0; $i < $rows; $i++) {
        for ($j = 0; $j < $cols; $j++) {
            $sum = 0;
            for ($k = 0; $k < $inner; $k++) {
                $sum += $a[$i][$k] * $b[$k][$j];
            }
            $c[$i][$j] = $sum;
        }
    }
    return $c;
}

function print_matrix(array $m): void
{
    foreach ($m as $row) {
        echo implode(" ", array_map(fn($x) => sprintf("%4d", $x), $row)), "\n";
    }
}

$a = [[1, 2, 3, 4], [5, 6, 7, 8], [-1, 0, 2, -3]];
$b = [[1, 0], [0, 1], [2, -1], [3, 5]];
print_matrix(matrix_multiply($a, $b));
echo "\n";

// Fibonacci via powers of [[1,1],[1,0]].
$m = [[1, 1], [1, 0]];
$p = [[1, 0], [0, 1]];
for ($i = 0; $i < 20; $i++) {
    $p = matrix_multiply($p, $m);
}
echo "fib(20) = {$p[0][1]}\n";
