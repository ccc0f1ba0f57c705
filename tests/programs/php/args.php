<?php
// $argv[0] is the script itself.
$args = array_slice($argv, 1);
echo "argc: " . count($args) . "\n";
foreach ($args as $i => $arg) {
    printf("%d: %s\n", $i + 1, $arg);
}
