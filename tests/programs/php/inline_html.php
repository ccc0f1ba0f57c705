<?php
$title = "Multiplication table";
$size = 4;
?>
<html>
<head><title><?= htmlspecialchars($title) ?></title></head>
<body>
<h1><?php echo $title, " & more"; ?></h1>
<table>
<?php for ($row = 1; $row <= $size; $row++): ?>
  <tr><?php for ($col = 1; $col <= $size; $col++) { echo "<td>", $row * $col, "</td>"; } ?></tr>
<?php endfor; ?>
</table>
<p>Plain text between PHP blocks: 1 + 1 = <?php echo 1 + 1; ?>.</p>
</body>
</html>
