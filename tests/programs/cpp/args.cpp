#include <iostream>
#include <string>
#include <vector>

int main(int argc, char *argv[])
{
    std::vector<std::string> args(argv + 1, argv + argc);
    std::cout << "argc: " << args.size() << "\n";
    for (std::size_t i = 0; i < args.size(); ++i)
        std::cout << i + 1 << ": " << args[i] << "\n";
    return 0;
}
