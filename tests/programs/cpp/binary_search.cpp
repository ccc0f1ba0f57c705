#include <algorithm>
#include <iostream>
#include <vector>

// Recursive binary search; returns the index of value or -1.
template <typename T>
int binary_search_rec(const std::vector<T> &v, const T &value, int lo, int hi)
{
    if (lo > hi)
        return -1;
    int mid = lo + (hi - lo) / 2;
    if (v[mid] == value)
        return mid;
    if (v[mid] < value)
        return binary_search_rec(v, value, mid + 1, hi);
    return binary_search_rec(v, value, lo, mid - 1);
}

int main()
{
    std::vector<int> v = {42, 7, 19, 3, 88, 61, 25, 14, 70, 1};
    std::sort(v.begin(), v.end());

    std::cout << "sorted:";
    for (int x : v)
        std::cout << ' ' << x;
    std::cout << '\n';

    for (int key : {1, 25, 88, 50}) {
        int i = binary_search_rec(v, key, 0, static_cast<int>(v.size()) - 1);
        auto it = std::lower_bound(v.begin(), v.end(), key);
        std::cout << key << ": index " << i << ", lower_bound at " << (it - v.begin())
                  << (std::binary_search(v.begin(), v.end(), key) ? " (present)" : " (absent)")
                  << '\n';
    }
    return 0;
}
