#include <algorithm>
#include <cctype>
#include <iostream>
#include <map>
#include <string>
#include <vector>

using namespace std;

// Count words (runs of letters, lowercased) read from standard input and
// print them most frequent first, ties in alphabetical order.
int main()
{
    ios::sync_with_stdio(false);
    map<string, int> freq;
    string word;
    char ch;
    while (cin.get(ch)) {
        if (isalpha(static_cast<unsigned char>(ch))) {
            word += static_cast<char>(tolower(static_cast<unsigned char>(ch)));
        } else if (!word.empty()) {
            ++freq[word];
            word.clear();
        }
    }
    if (!word.empty())
        ++freq[word];

    vector<pair<string, int>> items(freq.begin(), freq.end());
    stable_sort(items.begin(), items.end(),
                [](const auto &a, const auto &b) { return a.second > b.second; });
    for (const auto &[w, n] : items)
        cout << n << ' ' << w << '\n';
    return 0;
}
