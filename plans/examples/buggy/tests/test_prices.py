import unittest

from prices import apply_discount, total


class PricesTest(unittest.TestCase):
    def test_a_quarter_off(self):
        self.assertEqual(apply_discount(80, 25), 60)

    def test_no_discount(self):
        self.assertEqual(apply_discount(19.99, 0), 19.99)

    def test_total(self):
        self.assertEqual(total([10, 20], 10), 27)

    def test_a_discount_over_100_is_refused(self):
        with self.assertRaises(ValueError):
            apply_discount(10, 120)


if __name__ == "__main__":
    unittest.main()
