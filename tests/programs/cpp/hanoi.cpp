#include <iostream>

// Towers of Hanoi: move n disks from peg 1 to peg 3.
static int moves = 0;

void hanoi(int n, int from, int to, int via)
{
    if (n == 0)
        return;
    hanoi(n - 1, from, via, to);
    ++moves;
    std::cout << "Move disk " << n << " from peg " << from << " to peg " << to << "\n";
    hanoi(n - 1, via, to, from);
}

int main()
{
    hanoi(4, 1, 3, 2);
    std::cout << "Total moves: " << moves << "\n";
    return 0;
}
