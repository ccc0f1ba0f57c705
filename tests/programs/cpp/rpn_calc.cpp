#include <iostream>
#include <sstream>
#include <stack>
#include <stdexcept>
#include <string>

// Evaluate one Reverse Polish Notation expression per input line.
// Stops at the first error and exits with status 4.
long long power(long long b, long long e)
{
    long long r = 1;
    while (e-- > 0)
        r *= b;
    return r;
}

long long evaluate(const std::string &line)
{
    std::istringstream in(line);
    std::stack<long long> st;
    std::string tok;
    while (in >> tok) {
        if (tok == "+" || tok == "-" || tok == "*" || tok == "/" || tok == "^") {
            if (st.size() < 2)
                throw std::runtime_error("stack underflow");
            long long b = st.top(); st.pop();
            long long a = st.top(); st.pop();
            switch (tok[0]) {
            case '+': st.push(a + b); break;
            case '-': st.push(a - b); break;
            case '*': st.push(a * b); break;
            case '^': st.push(power(a, b)); break;
            case '/':
                if (b == 0)
                    throw std::runtime_error("division by zero");
                st.push(a / b);
                break;
            }
        } else {
            st.push(std::stoll(tok));
        }
    }
    if (st.size() != 1)
        throw std::runtime_error("malformed expression");
    return st.top();
}

int main()
{
    std::string line;
    int lineno = 0;
    while (std::getline(std::cin, line)) {
        ++lineno;
        try {
            long long value = evaluate(line);
            std::cout << line << " = " << value << '\n';
        } catch (const std::exception &e) {
            std::cout << "line " << lineno << ": error: " << e.what() << '\n';
            return 4;
        }
    }
    return 0;
}
