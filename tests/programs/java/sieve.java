import java.util.ArrayList;
import java.util.BitSet;
import java.util.List;

class Sieve {
    static List<Integer> primesUpTo(int limit) {
        BitSet composite = new BitSet(limit + 1);
        List<Integer> primes = new ArrayList<>();
        for (int i = 2; i <= limit; i++) {
            if (!composite.get(i)) {
                primes.add(i);
                for (long j = (long) i * i; j <= limit; j += i) {
                    composite.set((int) j);
                }
            }
        }
        return primes;
    }

    public static void main(String[] args) {
        System.out.println(primesUpTo(100));
        System.out.println("primes up to 1000000: " + primesUpTo(1_000_000).size());
    }
}
